from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.generics import GenericAPIView

from mcsite.api.responses import respond
from mcsite.api.schema import envelope_errors
from mcsite.errors import DomainError, ErrorCode
from servers import services
from servers.models import Node, NodeCall, Server
from servers.serializers import NodeCallSerializer, NodeSerializer, ServerInputSerializer, ServerOutputSerializer


class _ServerControlMixin:
    @extend_schema(request=None, responses={200: ServerOutputSerializer, 202: NodeCallSerializer,
                                            **envelope_errors(401, 404, 409, 503)})
    @action(detail=True, methods=["post"])
    def start(self, request, pk=None):
        """Start the server's process on its node (start command in its folder, detached, output to logs/).
        When the node has not answered within MCSITE_NODE_CALL_WAIT_SECONDS: 202 with the pending call
        (poll `GET /api/node-calls/{id}`)."""
        server = self.get_object()
        return _control_response(server, services.server_start(server=server, actor=request.user, request=request))

    @extend_schema(request=None, responses={200: ServerOutputSerializer, 202: NodeCallSerializer,
                                            **envelope_errors(401, 404, 409, 503)})
    @action(detail=True, methods=["post"])
    def stop(self, request, pk=None):
        """Stop gracefully on its node: RCON or console `stop`, then SIGTERM, then SIGKILL after the stop
        timeout. 202 with the pending call as for start."""
        server = self.get_object()
        return _control_response(server, services.server_stop(server=server, actor=request.user, request=request))


def _control_response(server, outcome):
    if not outcome.done:
        return respond(NodeCallSerializer(outcome.call).data, message=outcome.message, status_code=202)
    return respond(ServerOutputSerializer(server).data, message=outcome.message)


class ServerViewSet(_ServerControlMixin, viewsets.GenericViewSet):
    """Servers you may see: your own, or all of them for an admin."""

    serializer_class = ServerOutputSerializer
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        return Server.objects.for_user(self.request.user).select_related("owner")

    @extend_schema(responses={200: ServerOutputSerializer(many=True), **envelope_errors(401)})
    def list(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(ServerOutputSerializer(page, many=True).data)

    @extend_schema(
        request=ServerInputSerializer,
        responses={201: ServerOutputSerializer, **envelope_errors(400, 401)},
    )
    def create(self, request):
        data = _validated(request.data, partial=False)
        server = services.server_create(owner=request.user, data=data, actor=request.user, request=request)
        return respond(ServerOutputSerializer(server).data, message="Server created", status_code=201)

    @extend_schema(responses={200: ServerOutputSerializer, **envelope_errors(401, 404)})
    def retrieve(self, request, pk=None):
        return respond(ServerOutputSerializer(self.get_object()).data)

    @extend_schema(request=ServerInputSerializer, responses={200: ServerOutputSerializer, **envelope_errors(400, 401, 404)})
    def update(self, request, pk=None):
        return self._update(request, partial=False)

    @extend_schema(request=ServerInputSerializer, responses={200: ServerOutputSerializer, **envelope_errors(400, 401, 404)})
    def partial_update(self, request, pk=None):
        return self._update(request, partial=True)

    def _update(self, request, *, partial: bool):
        server = self.get_object()
        old_node = server.node
        data = _validated(request.data, partial=partial)
        server = services.server_update(server=server, data=data, actor=request.user, request=request)
        message = "Server updated"
        if server.node != old_node:  # moved to another game host: say what stays behind
            message = " ".join(["Server updated.", *services.move_notes(server, old_node)])
        return respond(ServerOutputSerializer(server).data, message=message)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "delete_backups", bool, description="Also delete this server's backups and their files (default: keep them)"
            )
        ],
        responses={200: None, **envelope_errors(400, 401, 404)},
    )
    def destroy(self, request, pk=None):
        server = self.get_object()
        raw = request.query_params.get("delete_backups", "false").lower()
        if raw not in {"true", "false", "1", "0"}:
            raise DomainError(ErrorCode.VALIDATION_ERROR, "delete_backups must be true or false",
                              details={"delete_backups": ["Must be true or false."]})
        services.server_delete(server=server, delete_backups=raw in {"true", "1"}, actor=request.user, request=request)
        return respond(None, message="Server deleted")


def _validated(body, *, partial: bool) -> dict:
    if not isinstance(body, dict):
        raise DomainError(ErrorCode.VALIDATION_ERROR, "Request body must be a JSON object")
    serializer = ServerInputSerializer(data=body, partial=partial)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


class NodeListView(GenericAPIView):
    serializer_class = NodeSerializer

    @extend_schema(summary="Game hosts (nodes) as they last reported (admins)",
                   responses={200: NodeSerializer(many=True), **envelope_errors(401, 403)})
    def get(self, request):
        if not request.user.is_superuser:
            raise DomainError(ErrorCode.PERMISSION_DENIED, "Only administrators see the game hosts")
        names = set(Server.objects.values_list("node", flat=True)) - set(Node.objects.values_list("name", flat=True))
        # A node a server names that never reported is listed too, as unknown.
        rows = sorted([*Node.objects.all(), *(Node(name=name) for name in names)], key=lambda n: n.name)
        return respond(NodeSerializer(rows, many=True).data)


class NodeCallView(GenericAPIView):
    serializer_class = NodeCallSerializer

    @extend_schema(summary="A start, stop or folder check sent to a node, to poll after a 202",
                   responses={200: NodeCallSerializer, **envelope_errors(401, 404)})
    def get(self, request, call_id):
        call = NodeCall.objects.filter(pk=call_id).select_related("server").first()
        visible = call is not None and (
            request.user.is_superuser or call.actor_id == request.user.pk
            or (call.server is not None and Server.objects.for_user(request.user).filter(pk=call.server_id).exists()))
        if not visible:
            raise DomainError(ErrorCode.NOT_FOUND, "No such call")
        return respond(NodeCallSerializer(call).data)
