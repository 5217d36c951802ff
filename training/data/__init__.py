"""Training data: the online episode replay (`replay.py`); offline datasets (`datasets.py`), made by the
generators (`generators/`, `python -m training.data.generate`) and from robot logs (`rosbag_import.py`)."""
