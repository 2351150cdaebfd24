"""Ray Serve application `retrieval`; the Serve config refers to `lorag.retrieval.deployment:app`."""

from lorag.serving import deployment_for

app = deployment_for("retrieval").bind()
