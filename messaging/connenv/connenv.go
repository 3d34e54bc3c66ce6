// Package connenv reads how to reach RabbitMQ and MongoDB from the environment variables the
// chart sets. It is the one bridge between the plain reader (envread) and the connection types
// of rabbitqueue and mongostore, so neither of those knows about environment variables.
package connenv

import (
	"strings"

	"github.com/keda-demo/keda-demo/messaging/contract"
	"github.com/keda-demo/keda-demo/messaging/envread"
	"github.com/keda-demo/keda-demo/messaging/mongostore"
	"github.com/keda-demo/keda-demo/messaging/rabbitqueue"
)

// Broker reads RABBITMQ_* and QUEUE_NAME: either RABBITMQ_URL or its parts.
func Broker(r *envread.Reader) rabbitqueue.Broker {
	var b rabbitqueue.Broker
	useTLS := r.Bool("RABBITMQ_TLS", false)
	if r.Exclusive("RABBITMQ_URL", "RABBITMQ_HOST", "RABBITMQ_PORT", "RABBITMQ_VHOST", "RABBITMQ_USERNAME", "RABBITMQ_PASSWORD") {
		b.URL = r.String("RABBITMQ_URL", "")
		if urlTLS, err := rabbitqueue.CheckURL(b.URL); err != nil {
			r.Problemf("RABBITMQ_URL %v", err)
		} else if urlTLS {
			useTLS = true
		}
	} else {
		host := r.Required("RABBITMQ_HOST", "unless RABBITMQ_URL is set")
		port := r.Int("RABBITMQ_PORT", rabbitqueue.DefaultPort(useTLS), 1, 65535)
		user, pass := r.String("RABBITMQ_USERNAME", ""), r.String("RABBITMQ_PASSWORD", "")
		if (user == "") != (pass == "") {
			r.Problemf("RABBITMQ_USERNAME and RABBITMQ_PASSWORD must be set together")
		}
		b.URL = rabbitqueue.BrokerURL(host, port, r.String("RABBITMQ_VHOST", "/"), user, pass, useTLS)
	}
	if useTLS {
		b.TLS = rabbitqueue.TLSConfig(r.CAPool("RABBITMQ_CA_FILE"))
	} else if r.Set("RABBITMQ_CA_FILE") {
		r.Problemf("RABBITMQ_CA_FILE is set but TLS is off: set RABBITMQ_TLS=true or use an amqps:// URL")
	}
	b.Topology = contract.Topology{Queue: r.String("QUEUE_NAME", contract.DefaultQueue)}
	return b
}

// Mongo reads MONGODB_*: either MONGODB_URI or its parts (MONGODB_HOST may list the members of
// the replica set MONGODB_REPLICA_SET names).
func Mongo(r *envread.Reader) mongostore.Mongo {
	var m mongostore.Mongo
	useTLS := r.Bool("MONGODB_TLS", false)
	if r.Exclusive("MONGODB_URI", "MONGODB_HOST", "MONGODB_PORT", "MONGODB_REPLICA_SET", "MONGODB_USERNAME", "MONGODB_PASSWORD", "MONGODB_AUTH_SOURCE") {
		m.URI = r.String("MONGODB_URI", "")
		if uriTLS, err := mongostore.CheckURI(m.URI); err != nil {
			r.Problemf("MONGODB_URI %v", err)
		} else if uriTLS {
			useTLS = true
		}
	} else {
		// A comma-separated list: the members of a replica set.
		var hosts []string
		if list := r.Required("MONGODB_HOST", "unless MONGODB_URI is set"); list != "" {
			for _, h := range strings.Split(list, ",") {
				if h = strings.TrimSpace(h); h == "" {
					r.Problemf("MONGODB_HOST %q has an empty entry: give host[:port] entries separated by commas", list)
				}
				hosts = append(hosts, h)
			}
		}
		port := r.Int("MONGODB_PORT", 27017, 1, 65535)
		user, pass := r.String("MONGODB_USERNAME", ""), r.String("MONGODB_PASSWORD", "")
		if (user == "") != (pass == "") {
			r.Problemf("MONGODB_USERNAME and MONGODB_PASSWORD must be set together")
		}
		m.URI = mongostore.MongoURI(hosts, port, r.String("MONGODB_REPLICA_SET", ""), user, pass, r.String("MONGODB_AUTH_SOURCE", "admin"), useTLS)
	}
	if useTLS {
		m.TLS = mongostore.TLSConfig(r.CAPool("MONGODB_CA_FILE"))
	} else if r.Set("MONGODB_CA_FILE") {
		r.Problemf("MONGODB_CA_FILE is set but MONGODB_TLS is not true")
	}
	m.Database = r.String("MONGODB_DATABASE", "keda_demo")
	m.Collection = r.String("MONGODB_COLLECTION", "records")
	return m
}
