"""Workers on a Dask distributed cluster, behind the same executor seam as local processes.

Owns: `DaskExecutor` (executor: the client side), `DaskHandle` and `DaskExitInfo` (handle: one
agent seen from the client), the Dask-worker side (remote: the task that supervises an agent,
the worker plugin, reaping agents of dead Dask workers), and shipping a workspace to a worker
without the client's filesystem (ship). Never writes the user's queue: an agent's stub-queue
marks come back in its exit. Imported only when `ralphnb.DaskExecutor` is asked for (its
modules import `distributed`, the `dask` extra); `import ralphnb` never imports it.
"""
