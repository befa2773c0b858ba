"""REST API of the signed-in user and their personal access tokens (thin)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts import services
from apps.accounts.access import access_token
from apps.accounts.models import PersonalAccessToken
from apps.accounts.principal import principal_from_request
from apps.accounts.selectors import token_list
from apps.accounts.serializers import (
    MeSerializer,
    PasswordChangeSerializer,
    TokenCreatedSerializer,
    TokenCreateSerializer,
    TokenSerializer,
)
from apps.core.api import validated


class MeView(APIView):
    """The signed-in user."""

    permission = "token:manage"

    @extend_schema(responses={200: MeSerializer})
    def get(self, request: Request) -> Response:
        return Response(MeSerializer(principal_from_request(request).require_user()).data)


class PasswordChangeView(APIView):
    """Change one's own password (session only; tokens cannot)."""

    permission = "token:manage"

    @extend_schema(request=PasswordChangeSerializer, responses={204: None})
    def post(self, request: Request) -> Response:
        data = validated(PasswordChangeSerializer, request.data)
        principal = principal_from_request(request)
        services.password_change(principal=principal, user=principal.require_user(), **data)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TokenListView(generics.ListCreateAPIView):  # type: ignore[type-arg]  # DRF generics are not generic at runtime
    """One's own personal access tokens; create one (the secret is in the answer, once)."""

    serializer_class = TokenSerializer
    permission = "token:manage"

    def get_queryset(self) -> QuerySet[PersonalAccessToken]:
        if getattr(self, "swagger_fake_view", False):
            return PersonalAccessToken.objects.none()
        principal = principal_from_request(self.request)
        principal.require_unscoped("list tokens")
        return token_list(user=principal.require_user())

    @extend_schema(request=TokenCreateSerializer, responses={201: TokenCreatedSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = validated(TokenCreateSerializer, request.data)
        created = services.token_create(
            principal=principal_from_request(request),
            name=data["name"],
            read_only=data["read_only"],
            team_slugs=data["teams"],
            expires_in_days=data["expires_in_days"],
        )
        body = TokenCreatedSerializer(created.token).data | {"token": created.secret}
        return Response(body, status=status.HTTP_201_CREATED)


class TokenDetailView(APIView):
    """One of one's own tokens; DELETE revokes it."""

    permission = "token:manage"

    @extend_schema(responses={200: TokenSerializer})
    def get(self, request: Request, token_id: str) -> Response:
        principal = principal_from_request(request)
        principal.require_unscoped("read tokens")
        return Response(TokenSerializer(access_token(principal, token_id)).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, token_id: str) -> Response:
        principal = principal_from_request(request)
        services.token_revoke(principal=principal, token=access_token(principal, token_id))
        return Response(status=status.HTTP_204_NO_CONTENT)
