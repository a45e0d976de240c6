"""What every route shares: the service object of the running app and the optional bearer-token check."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

_bearer = HTTPBearer(auto_error=False, description="Set when the service was started with a token.")


def get_service(request: Request) -> Any:
    """The :class:`~proml_lab.serving.app.Service` of this app (models, exposure log, metrics)."""
    return request.app.state.service


def require_token(request: Request,
                  credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
    """Refuse the call unless it carries the service's bearer token (when one is configured)."""
    token = request.app.state.service.config.token
    if not token:
        return
    given = credentials.credentials if credentials is not None else ""
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED,
                            detail="missing or wrong bearer token: send 'Authorization: Bearer <token>'",
                            headers={"WWW-Authenticate": "Bearer"})


Service = Annotated[Any, Depends(get_service)]
Authorized = Depends(require_token)
