"""Workstation side of recore_nav: ReCoRe world model, behaviour learning, baselines, export."""
