# JupyterLab settings of this project, used by `make lab` (which sets JUPYTER_CONFIG_PATH to this folder).
from pathlib import Path

project = Path(__file__).resolve().parents[1]
c = get_config()  # noqa: F821 - provided by Jupyter when it loads this file

c.ServerApp.ip = "127.0.0.1"  # this machine only; token authentication stays on (the URL printed at start)
c.ServerApp.root_dir = str(project)
c.LabApp.default_url = "/lab/tree/notebooks"
# the study's notebooks are saved without outputs: the repository tracks them stripped (see effnb/report/lab.py)
c.ContentsManager.pre_save_hook = "effnb.report.lab.strip_on_save"
# lab-settings/overrides.json: double-clicking a paired .py opens it as a notebook (jupytext's viewer)
c.LabApp.app_settings_dir = str(project / "jupyter" / "lab-settings")
