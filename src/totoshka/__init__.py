"""Totoshka: a Telegram bot that repaints photos in the style of a painting."""

__version__ = "0.1.0"
