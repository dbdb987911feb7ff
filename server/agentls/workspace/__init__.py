"""Workspace: its folders, which files may be used, their contents in memory, and disk events.

Modules: ``roots`` (folders and containment), ``filters`` (secrets, ignore files, binary),
``index`` (which files exist and may be used), ``loader`` (reading in parallel), ``cache``
(contents in memory), ``watcher`` (disk events). None imports pygls; import them directly (this
package imports nothing, so ``agentls --help`` stays fast).
"""
