"""Helpers shared by the tests: browsers, servers, clusters, emulators, PHI fixtures."""
