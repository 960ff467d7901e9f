"""The notifications' routes: GET /api/notifications and POST /api/notify/test (web.ROUTES binds them).

POST takes JSON only; auth and the cross-site check are the server's Gate, as for every route.
"""

from __future__ import annotations

from .http import Request, Response, json_refusal, json_response

# Handlers take (ctx, request); ctx is web.WebContext (not imported: web.py imports this module).


def notifications(ctx, request: Request) -> Response:
    """GET /api/notifications: the channels (URLs masked) and the latest outcomes. `ctx` is web.WebContext."""
    notifier = ctx.notifier()
    if notifier is None:
        return json_response(200, {"channels": [], "recent": []})
    return json_response(200, {"channels": notifier.channels_view(), "recent": notifier.recent()})


def notify_test(ctx, request: Request) -> Response:
    """POST /api/notify/test: a test message to every URL, and each result."""
    refusal = json_refusal(request)
    if refusal is not None:
        return refusal
    notifier = ctx.notifier()
    if notifier is None or not notifier.channels:
        message = "no notification URLs configured (the notify: section of the config)"
        return json_response(409, {"error": "not_configured", "message": message})
    return json_response(200, {"results": notifier.test()})
