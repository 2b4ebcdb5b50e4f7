// Package deploy holds stockflow's container image (Dockerfile from source,
// Dockerfile.prebuilt offline) and compose.yaml; the directories beneath it
// (k8s, prometheus, grafana) have their own tests. It has no code of its own.
// Its tests check that the two Dockerfiles build the same image, then build
// the image offline (scripts/image.sh) and run it for real on a local Docker
// engine (scripts/docker.sh) against the MariaDB, Redis and Kafka of
// scripts/services.sh. compose.yaml, with mysql/users.sql (the database users
// its MySQL creates), is checked by cmd/stockworker's TestComposeFile, which
// knows the variables stockworker reads, and TestComposeDatabaseUsers.
//
// Where no Docker engine can start, TestImage is skipped with the reason,
// also under CI=true; once the engine answers, every later step must pass.
// A service that does not answer fails the test under CI=true (testsvc).
package deploy
