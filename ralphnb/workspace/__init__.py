"""Isolated workspaces and getting their work back into the user's checkout.

Owns: one directory per task outside the checkout (workspaces), every git command ralphnb runs
through one hardened entry point (git), merging a finished branch into the target branch
(merge), and the three-way copy back of a plain-directory workspace (copy).
Never: starts an agent, reads or writes the queue files, or touches the user's index, working
tree or HEAD except through a merge that cannot touch their uncommitted files.
"""
