"""What a person sees: the ipywidgets dashboard, HTML tables, the live text table of a terminal.

Owns: widgets (the dashboard), render (records as HTML), console (the terminal's live table).
Never: changes a worker's state except by calling the same `loop.stop/kill` a user can call.
"""
