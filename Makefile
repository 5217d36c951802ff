# Shortcuts; the README's two commands are the scripts/bootstrap.sh lines below.
.PHONY: demo test bench
demo:
	bash scripts/bootstrap.sh demo
test:
	bash scripts/bootstrap.sh test
bench:
	MUJOCO_GL=egl .venv/bin/python bench/policy_latency.py
	MUJOCO_GL=egl .venv/bin/python bench/sim_speed.py
	.venv/bin/python bench/train_update_speed.py
