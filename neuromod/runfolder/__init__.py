"""A run folder: one contract between the run that writes it and everything that reads it.

:mod:`~neuromod.runfolder.files` names its files and statuses; :mod:`~neuromod.runfolder.folder` is
:class:`RunFolder` (the writer's and the readers' view, and the one decision of what a launch does with a
folder); :mod:`~neuromod.runfolder.liveness` the owner and heartbeat of a running run;
:mod:`~neuromod.runfolder.settings` the flattened settings it records; :mod:`~neuromod.runfolder.objective`
the number a run returns to a sweeper. Import from the modules; nothing here needs torch.
"""
