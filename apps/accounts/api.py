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
from apps.accounts.actors import actor_user
from apps.accounts.models import PersonalAccessToken
from apps.accounts.selectors import token_list
from apps.accounts.serializers import (
    MeSerializer,
    PasswordChangeSerializer,
    TokenCreatedSerializer,
    TokenCreateSerializer,
    TokenSerializer,
)
from apps.core.api import http_request, validated
from apps.teams.api_base import request_actor


class MeView(APIView):
    """The signed-in user."""

    permission = "token:manage"

    @extend_schema(responses={200: MeSerializer})
    def get(self, request: Request) -> Response:
        return Response(MeSerializer(actor_user(request_actor(request))).data)


class PasswordChangeView(APIView):
    """Change one's own password (session only; tokens cannot)."""

    permission = "token:manage"

    @extend_schema(request=PasswordChangeSerializer, responses={204: None})
    def post(self, request: Request) -> Response:
        data = validated(PasswordChangeSerializer, request.data)
        actor = request_actor(request)
        services.password_change(
            actor=actor, user=actor_user(actor), request=http_request(request), **data
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class TokenListView(generics.ListCreateAPIView):  # type: ignore[type-arg]  # DRF generics are not generic at runtime
    """One's own personal access tokens; create one (the secret is in the answer, once)."""

    serializer_class = TokenSerializer
    permission = "token:manage"

    def get_queryset(self) -> QuerySet[PersonalAccessToken]:
        if getattr(self, "swagger_fake_view", False):
            return PersonalAccessToken.objects.none()
        return token_list(user=actor_user(request_actor(self.request)))

    @extend_schema(request=TokenCreateSerializer, responses={201: TokenCreatedSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = validated(TokenCreateSerializer, request.data)
        created = services.token_create(
            actor=request_actor(request),
            name=data["name"],
            read_only=data["read_only"],
            team_slugs=data["teams"],
            expires_in_days=data["expires_in_days"],
            request=http_request(request),
        )
        body = TokenCreatedSerializer(created.token).data | {"token": created.secret}
        return Response(body, status=status.HTTP_201_CREATED)


class TokenDetailView(APIView):
    """One of one's own tokens; DELETE revokes it."""

    permission = "token:manage"

    @extend_schema(responses={200: TokenSerializer})
    def get(self, request: Request, token_id: str) -> Response:
        return Response(TokenSerializer(access_token(request_actor(request), token_id)).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, token_id: str) -> Response:
        actor = request_actor(request)
        services.token_revoke(
            actor=actor, token=access_token(actor, token_id), request=http_request(request)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
