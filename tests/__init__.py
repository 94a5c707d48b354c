"""The project's tests, a regular package: a site-packages `tests` (mlforecast ships one) must not shadow it."""
