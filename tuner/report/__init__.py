"""What people read: console lines and tables, study figures, model figures, and
the plots logged with a study."""
