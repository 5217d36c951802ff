"""Environments as training meets them: the rollout `collector` over any vector env made by
`recore_nav.sim.factory`, and the `igibson` adapter behind the environment contract."""
