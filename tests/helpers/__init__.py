"""Helpers shared by the test tiers (import as ``tests.helpers.<module>``); no tests here."""
