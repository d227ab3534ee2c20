"""Supervised agent processes: start, watch, stop, kill, and find the ones a crash left behind.

Owns: `Worker` (one agent process under its supervisor shim, its monitor thread, and the
worker environment `build_env`; process), reading its output into bounded lines (output), the
`ExitInfo` record every executor delivers (exits), the shim itself (_shim), the on-disk
registry of live workers and leftover reaping (registry), CPU and memory sampling (resources),
the executor seam the loop starts workers through plus the local executor (executors), and
the Dask distributed executor (dask/, imported only on request).
Never: reads or writes queue files (nor imports `ralphnb.queue`), decides what a task needs
next, or imports the loop.
"""
