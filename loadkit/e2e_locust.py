"""The traced user under its earlier name: ``from loadkit.e2e_locust import TracedSmtpUser``.

The end-to-end code lives in `loadkit.e2e`; the user in `loadkit.users`.
"""

from loadkit.users import TracedSmtpUser

__all__ = ["TracedSmtpUser"]
