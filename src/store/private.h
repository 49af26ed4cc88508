/* Between the store (store.c) and its socket server (server.c) only. */
#ifndef VIOD_STORE_PRIVATE_H
#define VIOD_STORE_PRIVATE_H

#include "store.h"

struct viod_store_server;

/* The store's server, NULL until viod_store_listen succeeds. */
struct viod_store_server **viod_store_server_slot(struct viod_store *st);

/* Closes every connection and the socket, and unlinks the socket's path. */
void viod_store_server_free(struct viod_store_server *srv);

#endif
