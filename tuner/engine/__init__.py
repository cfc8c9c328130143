"""Running a study: the runner spawns worker processes, each worker runs trials
through the objective (or KerasTuner's loop), and builds the ensemble."""
