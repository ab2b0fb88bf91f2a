// Package fabricdns is the fabric's DNS server: it answers the names of the endpoints on a
// network to the containers on that network, on the network's gateway address, and forwards
// every other name to the host's upstream resolvers.
//
// It knows nothing about OVSDB or the registry: records come through the narrow [Directory]
// interface (fabricd feeds the in-memory [Table] from the replicated registry), and the
// addresses to listen on come level-triggered through [Server.Set]. A client is answered only
// when its source address lies inside the network whose gateway it asked, and then only about
// that network; everyone else is refused, so the server is neither a leak between networks
// nor an open resolver.
package fabricdns
