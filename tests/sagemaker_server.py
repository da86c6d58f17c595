"""moto_server with what SageMaker does and moto 5 does not, for the deploy tests; run as
``python -m tests.sagemaker_server -H 127.0.0.1 -p PORT`` (a server over HTTP, as moto_server is).

Added to moto's SageMaker before its server starts:
- ``UpdateEndpoint``: the endpoint takes the new config's variants (moto's endpoints are InService at once);
- endpoints that never become InService: POST ``/moto-api/static/sagemaker/stuck-endpoints`` with
  ``{"names": [...]}`` keeps each named endpoint Creating (or Updating) from its next create or update on;
- ``InvokeEndpoint`` answers each request with the next result queued through moto's own
  ``/moto-api/static/sagemaker/endpoint-results`` (moto keeps answering the same body with the first answer it
  gave, so a second deployment's smoke test could never see another answer).
"""

from __future__ import annotations

import json
from typing import Any

from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.moto_api._internal import urls as moto_api_urls
from moto.sagemaker.models import SageMakerModelBackend
from moto.sagemaker.responses import SageMakerResponse
from moto.sagemakerruntime.models import SageMakerRuntimeBackend

STUCK: set[str] = set()


def _update_endpoint(self: SageMakerModelBackend, endpoint_name: str, endpoint_config_name: str) -> Any:
    endpoint = self.endpoints[endpoint_name]  # KeyError: moto answers a missing one with an error
    config = self.describe_endpoint_config(endpoint_config_name)
    endpoint.endpoint_config_name = endpoint_config_name
    endpoint.production_variants = endpoint._process_production_variants(config["ProductionVariants"])
    endpoint.endpoint_status = "Updating" if endpoint_name in STUCK else "InService"
    endpoint.last_modified_time = utcnow()
    return endpoint


def _update_endpoint_action(self: SageMakerResponse) -> ActionResult:
    endpoint = self.sagemaker_backend.update_endpoint(
        self._get_param("EndpointName"), self._get_param("EndpointConfigName")
    )
    return ActionResult({"EndpointArn": endpoint.arn})


_create_endpoint = SageMakerModelBackend.create_endpoint


def _create_endpoint_stuck(self: SageMakerModelBackend, endpoint_name: str, *args: Any, **kwargs: Any) -> Any:
    endpoint = _create_endpoint(self, endpoint_name, *args, **kwargs)
    if endpoint_name in STUCK:
        endpoint.endpoint_status = "Creating"
    return endpoint


def _invoke_endpoint(self: SageMakerRuntimeBackend, endpoint_name: str, unique_repr: bytes) -> Any:
    if self.results_queue:
        return self.results_queue.pop(0)
    return ("body", "content_type", "invoked_production_variant", "custom_attributes")


def _set_stuck(request: Any, full_url: str, headers: Any) -> Any:
    STUCK.clear()
    STUCK.update(json.loads(request.data or b"{}").get("names", []))
    return 201, {}, ""


SageMakerModelBackend.update_endpoint = _update_endpoint  # type: ignore[attr-defined]
SageMakerModelBackend.create_endpoint = _create_endpoint_stuck  # type: ignore[method-assign]
SageMakerResponse.update_endpoint = _update_endpoint_action  # type: ignore[attr-defined]
SageMakerRuntimeBackend.invoke_endpoint = _invoke_endpoint  # type: ignore[method-assign]
moto_api_urls.url_paths["{0}/moto-api/static/sagemaker/stuck-endpoints"] = _set_stuck

if __name__ == "__main__":
    from moto.server import main

    main()
