#!/usr/bin/env bash
# The docker-compose Kafka broker (apache/kafka image, single-node KRaft), authenticated and
# encrypted: the entry point of the `kafka` service instead of the image's own, so that every
# property is written here, in one place (the local broker's deployment mode, infra/kafka/kafka.sh
# with V2V_KAFKA_TLS_DIR, has the same listeners and authorizer; an integration test runs it).
#
#   BROKER      SASL_SSL (SCRAM-SHA-512) on :9092, advertised kafka:9092: the services, and the
#               inter-broker listener (as the super user "admin")
#   HOST        SASL_SSL (SCRAM-SHA-512) on :29092, advertised localhost:29092: tools on the
#               Docker host (published on 127.0.0.1 only)
#   CONTROLLER  TLS with client certificates, on the container's loopback only: the broker's own
#               certificate (principal "kafka-broker")
#   authorizer  StandardAuthorizer: what no ACL allows is denied; "admin" and "kafka-broker" are
#               super users; `python -m v2v_platform.kafka_broker provision` (the kafka-setup
#               service) sets the services' SCRAM users and ACLs
#
# Environment:
#   CLUSTER_ID                the KRaft cluster id (formatting, once, on an empty data volume)
#   V2V_KAFKA_TLS_DIR         broker.pem (PKCS#8 key + certificate chain) and ca.crt, issued from
#                             the consortium CA by the pki service (`kafka_broker tls`)
#   V2V_KAFKA_ADMIN_PASSWORD  the super user's SCRAM password (12+ of A-Z a-z 0-9 _ -), set in the
#                             KRaft metadata when the data volume is formatted
#   KAFKA_HOME, V2V_KAFKA_DATA_DIR, V2V_KAFKA_CONF_DIR  default: the image's /opt/kafka,
#                             /var/lib/kafka/data, /tmp/v2v-kafka
# The generated properties (they hold that password) stay in a private directory under /tmp (a
# tmpfs in docker-compose.yml); /tmp/v2v-kafka/admin.properties is the health check's client.
set -euo pipefail

fail() {
  echo "kafka-broker.sh: $*" >&2
  exit 2
}

: "${CLUSTER_ID:?set CLUSTER_ID}"
: "${V2V_KAFKA_TLS_DIR:?set V2V_KAFKA_TLS_DIR (broker.pem and ca.crt)}"
: "${V2V_KAFKA_ADMIN_PASSWORD:?set V2V_KAFKA_ADMIN_PASSWORD}"
[[ "$V2V_KAFKA_ADMIN_PASSWORD" =~ ^[A-Za-z0-9_-]{12,}$ ]] ||
  fail "V2V_KAFKA_ADMIN_PASSWORD: 12 or more of A-Z a-z 0-9 _ - (it goes into JAAS and --add-scram)"
for file in broker.pem ca.crt; do
  [[ -r "$V2V_KAFKA_TLS_DIR/$file" ]] ||
    fail "$V2V_KAFKA_TLS_DIR/$file is missing or unreadable (is the pki service done?)"
done

KAFKA=${KAFKA_HOME:-/opt/kafka}
DATA=${V2V_KAFKA_DATA_DIR:-/var/lib/kafka/data}
CONF=${V2V_KAFKA_CONF_DIR:-/tmp/v2v-kafka}
ADMIN_USER=admin
SCRAM_LOGIN=org.apache.kafka.common.security.scram.ScramLoginModule
umask 077
mkdir -p "$CONF"

cat >"$CONF/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@localhost:9093
listeners=BROKER://:9092,HOST://:29092,CONTROLLER://localhost:9093
advertised.listeners=BROKER://kafka:9092,HOST://localhost:29092
listener.security.protocol.map=BROKER:SASL_SSL,HOST:SASL_SSL,CONTROLLER:SSL
inter.broker.listener.name=BROKER
controller.listener.names=CONTROLLER
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.broker.scram-sha-512.sasl.jaas.config=$SCRAM_LOGIN required username="$ADMIN_USER" password="$V2V_KAFKA_ADMIN_PASSWORD";
listener.name.host.scram-sha-512.sasl.jaas.config=$SCRAM_LOGIN required;
ssl.keystore.type=PEM
ssl.keystore.location=$V2V_KAFKA_TLS_DIR/broker.pem
ssl.truststore.type=PEM
ssl.truststore.location=$V2V_KAFKA_TLS_DIR/ca.crt
listener.name.controller.ssl.client.auth=required
ssl.principal.mapping.rules=RULE:^(.*,)?CN=([^,]+)(,.*)?\$/\$2/,DEFAULT
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:kafka-broker;User:$ADMIN_USER
log.dirs=$DATA
num.partitions=6
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
EOF

cat >"$CONF/admin.properties" <<EOF
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=$SCRAM_LOGIN required username="$ADMIN_USER" password="$V2V_KAFKA_ADMIN_PASSWORD";
ssl.truststore.type=PEM
ssl.truststore.location=$V2V_KAFKA_TLS_DIR/ca.crt
EOF

if [[ ! -f "$DATA/meta.properties" ]]; then
  echo "kafka-broker.sh: formatting $DATA (cluster $CLUSTER_ID) with the super user's credential"
  "$KAFKA/bin/kafka-storage.sh" format --cluster-id "$CLUSTER_ID" -c "$CONF/server.properties" \
    --add-scram "SCRAM-SHA-512=[name=$ADMIN_USER,password=$V2V_KAFKA_ADMIN_PASSWORD]"
fi
exec "$KAFKA/bin/kafka-server-start.sh" "$CONF/server.properties"
