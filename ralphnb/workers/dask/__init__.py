"""Workers on a Dask distributed cluster, behind the same executor seam as local processes.

Imported only when `ralphnb.DaskExecutor` is asked for (it needs the `dask` extra).
"""
