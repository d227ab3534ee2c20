"""Supervised agent processes: start, watch, stop, kill, and find the ones a crash left behind.

Owns: `Worker` (one agent process under its supervisor shim, its monitor and reader threads;
process), the shim itself (_shim), the on-disk registry of live workers (registry), CPU and
memory sampling (resources), the executor seam the loop starts workers through plus the local
executor (executors), and the Dask distributed executor (dask/, imported only on request).
Never: reads or writes queue files, decides what a task needs next, or imports the loop.
"""
