#!/usr/bin/env bash
# Kafka's console producer, run from the jars that scripts/services.sh keeps in
# its cache (Maven Central; no Kafka distribution needed). Example:
#   scripts/kafka-console-producer.sh --bootstrap-server 127.0.0.1:9092 \
#     --topic orders.placed --property parse.key=true --property key.separator='|'
# then type lines such as:  order-1|{"sku":"ABC","qty":2}
# Same environment as scripts/services.sh (KAFKA_VERSION, STOCKFLOW_CACHE).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KAFKA_VERSION="${KAFKA_VERSION:-4.1.1}"
export KAFKA_VERSION

# Fetches the jars on first use (quick when already cached), prints the libs dir.
LIBS="$("$SCRIPT_DIR/services.sh" kafka-libs)"
CFG="$(dirname "$LIBS")/config"

# The console producer moved from the Scala core (kafka.tools) to
# kafka-tools (org.apache.kafka.tools) in Kafka 4.0.
if [ "${KAFKA_VERSION%%.*}" -ge 4 ]; then
  CLASS=org.apache.kafka.tools.ConsoleProducer
else
  CLASS=kafka.tools.ConsoleProducer
fi

exec java -Xmx256m -cp "$LIBS/*" \
  -Dlog4j2.configurationFile="$CFG/log4j2-tools.properties" \
  -Dlog4j.configuration="file:$CFG/log4j-tools.properties" \
  "$CLASS" "$@"
