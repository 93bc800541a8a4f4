"""loadkit: load testing for mail and web servers, built on Locust."""

__version__ = "0.1.0"
