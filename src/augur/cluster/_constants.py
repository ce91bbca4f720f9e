"""Names the operators, their resources and the tests share."""

GROUP = "augur.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# Field manager for server-side apply, and the name on Events.
FIELD_MANAGER = "augur-operator"

# Labels on every child object.
PART_OF = "app.kubernetes.io/part-of"
MANAGED_BY = "app.kubernetes.io/managed-by"
NAME = "app.kubernetes.io/name"
INSTANCE = "app.kubernetes.io/instance"
COMPONENT = "app.kubernetes.io/component"
DECISION_SERVICE_LABEL = f"{GROUP}/decisionservice"
TUNING_JOB_LABEL = f"{GROUP}/tuningjob"

# Where the serving container finds its mounted files.
ROUTES_DIR = "/etc/augur/routes"
ROUTES_FILE = "routes.json"
MODELS_DIR = "/var/lib/augur/bentoml"
TOKEN_DIR = "/etc/augur/token"
RULES_DIR = "/etc/augur/rules"
SERVING_PORT = 3000

# The serving pod's containers, and what its shadow container shares with the serving one.
SERVING_CONTAINER = "decision"
SHADOW_CONTAINER = "shadow"
SHADOW_SOCKET_DIR = "/run/augur-shadow"
SHADOW_SOCKET = f"{SHADOW_SOCKET_DIR}/shadow.sock"
SHADOW_METRICS_PORT = 9464  # the shadow container's Prometheus /metrics
PREDICTION_LOG_DIR = "/var/lib/augur/prediction-log"

# Where the tuning driver finds its study.
STUDY_DIR = "/etc/augur/study"
STUDY_FILE = "study.yaml"
