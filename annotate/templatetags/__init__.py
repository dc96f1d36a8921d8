"""Template filters of the annotate app."""
