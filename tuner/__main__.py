from tuner.cli import console_entry

console_entry()
