"""What a person sees: the ipywidgets dashboard, HTML tables, the live text table of a terminal.

Owns: widgets (the dashboard and the notebook display), sampler (what the view reads from a
loop), render (records as HTML), transcript (an attempt's transcript as HTML), console (the
terminal's live table).
Only `widgets` imports ipywidgets, and nothing outside the view imports `widgets` but the
loop's lazy display hook (`Loop._repr_mimebundle_`, `Loop.dashboard`).
Never: changes a worker's state except by calling the same `loop.stop/kill` a user can call.
"""
