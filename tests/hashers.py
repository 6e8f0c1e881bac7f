"""A password hasher for the test process only.

Django's PBKDF2 runs a million iterations, some 0.3 s of CPU for each user a fixture creates:
minutes over the suite. This one writes the same ``pbkdf2_sha256`` format with one iteration; the
format carries its iteration count, so the web server and the worker (which keep the studio's
settings) verify these passwords as they verify any other."""

from __future__ import annotations

from django.contrib.auth.hashers import PBKDF2PasswordHasher


class OneIterationPBKDF2(PBKDF2PasswordHasher):
    iterations = 1
