"""Learning methods, one file each with its configuration beside it: `recore` (the ReCoRe world-model
agent, whose configuration also gives DreamerV2 and the ablations), built from `world_model`,
`behavior` and `networks`."""
