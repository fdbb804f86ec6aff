"""Small ASGI apps that tests serve under a real hypercorn (``tests.apps.x:asgi``)."""
