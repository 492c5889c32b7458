# Apache Kafka (KRaft, one combined broker+controller) on Debian's JRE, with the broker jars that
# make services-up fetches with Maven (deploy/local/kafka/pom.xml). Configured like the
# apache/kafka image: every KAFKA_FOO_BAR variable becomes foo.bar in server.properties. Run it
# with --network host and listeners on 127.0.0.1. Built by deploy/images/build.sh, whose context
# holds libs/, log4j.properties and kafka-entrypoint.sh.
FROM tollgate-local/debian:bookworm
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends openjdk-17-jre-headless \
 && rm -rf /var/lib/apt/lists/*
COPY libs/ /opt/kafka/libs/
COPY log4j.properties /opt/kafka/config/log4j.properties
COPY kafka-entrypoint.sh /usr/local/bin/entrypoint
ENTRYPOINT ["/usr/local/bin/entrypoint"]
