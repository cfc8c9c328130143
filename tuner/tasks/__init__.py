"""Tasks: one module each (forecasting, classification, char_lm), registered by
name in `tuner.tasks.base`. Every other module asks `get_task(name)` what a task
does; a new task subclasses `Task` and calls `register` (tests/tasks/ adds one).
"""
