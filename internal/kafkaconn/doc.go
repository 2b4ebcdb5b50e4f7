// Package kafkaconn builds every connection to Kafka from one set of security
// settings: TLS (a CA file or the system's roots, an optional client
// certificate, the broker's name always verified) and SASL (PLAIN,
// SCRAM-SHA-256, SCRAM-SHA-512). Settings are what a command reads from its
// environment and flags (KAFKA_TLS, KAFKA_TLS_CA_FILE, KAFKA_TLS_CERT_FILE,
// KAFKA_TLS_KEY_FILE, KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME,
// KAFKA_SASL_PASSWORD or KAFKA_SASL_PASSWORD_FILE); Settings.Load checks them
// and returns a Security, which gives a *kafka.Dialer for readers and a
// *kafka.Transport for writers and admin clients.
//
// Refused tells a cluster that refuses this client for good (wrong
// credentials, an untrusted certificate, TLS against a plaintext listener)
// from one that is away for a while: the first never heals by waiting, so
// callers stop at once, with Explain's reason in front of the error.
package kafkaconn
