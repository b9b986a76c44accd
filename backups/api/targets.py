"""Storage targets for off-site copies (issue #13), admins only:

    GET/POST              /api/storage-targets/
    GET/PATCH/DELETE      /api/storage-targets/{id}/
    POST                  /api/storage-targets/{id}/test/

Secrets are written only: a body's `secrets` sets them (an empty value
removes one, a name left out keeps it); answers list which are set
(`secrets_set`), never a value."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.generics import GenericAPIView

from backups.models import StorageTarget
from backups.services import targets as target_service
from mcsite.api.fields import RejectUnknownFieldsMixin
from mcsite.api.responses import respond
from mcsite.api.schema import envelope_errors
from mcsite.errors import DomainError, ErrorCode


class StorageTargetSerializer(serializers.ModelSerializer):
    secrets_set = serializers.SerializerMethodField(help_text="The names of the secrets that are set (never values)")

    class Meta:
        model = StorageTarget
        fields = ["id", "name", "kind", "settings", "secrets_set", "enabled", "is_default", "extra_retention_days",
                  "delete_delay_days", "object_lock_days", "created_at", "updated_at", "last_test_at",
                  "last_test_ok", "last_test_error"]
        read_only_fields = fields

    def get_secrets_set(self, target) -> list[str]:
        return target_service.secret_names(target)


class StorageTargetInputSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    name = serializers.SlugField(max_length=64, required=False)
    kind = serializers.ChoiceField(choices=StorageTarget.Kind.choices, required=False,
                                   help_text="Required when creating; cannot change")
    settings = serializers.DictField(required=False, help_text="local: path; s3: endpoint_url, region, bucket, "
                                     "prefix, addressing_style…; sftp: host, port, username, host_key, base_path")
    secrets = serializers.DictField(child=serializers.CharField(allow_blank=True), required=False, write_only=True,
                                    help_text="s3: access_key_id, secret_access_key; sftp: password, private_key, "
                                              "private_key_passphrase. Written only.")
    enabled = serializers.BooleanField(required=False)
    is_default = serializers.BooleanField(required=False)
    extra_retention_days = serializers.IntegerField(min_value=0, max_value=3650, required=False)
    delete_delay_days = serializers.IntegerField(min_value=0, max_value=3650, required=False)
    object_lock_days = serializers.IntegerField(min_value=0, max_value=3650, required=False)


class TargetTestSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    message = serializers.CharField(help_text="The steps that passed, or exactly which step failed and why")
    target = StorageTargetSerializer()


def _admin_only(request) -> None:
    if not request.user.is_superuser:
        raise DomainError(ErrorCode.PERMISSION_DENIED, "Only administrators manage storage targets")


def _input(request) -> dict:
    if not isinstance(request.data, dict):
        raise DomainError(ErrorCode.VALIDATION_ERROR, "Request body must be a JSON object")
    serializer = StorageTargetInputSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


class StorageTargetListView(GenericAPIView):
    serializer_class = StorageTargetSerializer

    @extend_schema(summary="Storage targets for off-site copies (admins)",
                   responses={200: StorageTargetSerializer(many=True), **envelope_errors(403)})
    def get(self, request):
        _admin_only(request)
        return respond(StorageTargetSerializer(StorageTarget.objects.all(), many=True).data)

    @extend_schema(summary="Add a storage target (checked and sealed before it is saved)",
                   request=StorageTargetInputSerializer,
                   responses={201: StorageTargetSerializer, **envelope_errors(400, 403)})
    def post(self, request):
        _admin_only(request)
        data = _input(request)
        target = target_service.target_save(actor=request.user, request=request, source="api", **data)
        return respond(StorageTargetSerializer(target).data, message="Storage target added", status_code=201)


class StorageTargetDetailView(GenericAPIView):
    serializer_class = StorageTargetSerializer

    def target(self) -> StorageTarget:
        _admin_only(self.request)
        target = StorageTarget.objects.filter(pk=self.kwargs["target_id"]).first()
        if target is None:
            raise DomainError(ErrorCode.NOT_FOUND, "Storage target not found")
        return target

    @extend_schema(summary="One storage target", responses={200: StorageTargetSerializer, **envelope_errors(403, 404)})
    def get(self, request, target_id):
        return respond(StorageTargetSerializer(self.target()).data)

    @extend_schema(summary="Change a storage target (secrets: only those given change)",
                   request=StorageTargetInputSerializer,
                   responses={200: StorageTargetSerializer, **envelope_errors(400, 403, 404)})
    def patch(self, request, target_id):
        target = self.target()
        data = _input(request)
        target = target_service.target_save(target=target, actor=request.user, request=request, source="api", **data)
        return respond(StorageTargetSerializer(target).data, message="Storage target saved")

    @extend_schema(summary="Delete a storage target that holds no copies", responses={
        200: None, **envelope_errors(400, 403, 404)})
    def delete(self, request, target_id):
        target_service.target_delete(target=self.target(), actor=request.user, request=request, source="api")
        return respond(None, message="Storage target deleted")


class StorageTargetTestView(GenericAPIView):
    serializer_class = TargetTestSerializer

    @extend_schema(summary="Write, read back and delete a small object on the target", request=None,
                   responses={200: TargetTestSerializer, **envelope_errors(403, 404)})
    def post(self, request, target_id):
        target = StorageTargetDetailView(request=request, kwargs={"target_id": target_id}).target()
        ok, message = target_service.target_test(target=target)
        return respond(TargetTestSerializer({"ok": ok, "message": message, "target": target}).data,
                       message="Target test passed" if ok else "Target test failed")
