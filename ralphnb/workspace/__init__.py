"""Isolated workspaces and getting their work back into the user's checkout.

Owns: one directory per task outside the checkout (workspaces; plain files in files; the record
of the branches ralphnb made in records), every git command ralphnb runs through one hardened
entry point (git), with the repository's own configuration set aside for every command that
reads or writes file contents, merges or commits (sealed), what never lands in the user's
checkout (guards: `.ralph/`, links leading outside the tree, files that need a filter driver),
merging a finished branch into the target branch (merge), the three-way copy back of a
plain-directory workspace (copy), noticing a changed repository config (repoconfig), and
publishing as ralph's git_publish_mode says (publish: keep on the task branch, or push the
target branch to its upstream).
Never: starts an agent, reads or writes the queue files, runs a program named by git
configuration or attributes, or touches the user's index, working tree or HEAD except through a
fast-forward that cannot touch their uncommitted files.
"""
