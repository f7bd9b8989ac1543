/* SPDX-License-Identifier: MIT */
/* Synchronous vfio-user client (vu_client.h): being written. */
