"""Publisher: Markdown posts to a static blog, feeds and email newsletters."""

__version__ = "0.1.0"
