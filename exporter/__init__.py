"""Twitchminert: monitoring and management for TwitchDropsMiner."""

__version__ = "0.1.0"
