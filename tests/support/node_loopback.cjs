// Preloaded into Node servers the tests start (`node --require tests/support/node_loopback.cjs ...`):
// a server that listens on every interface (address omitted, '::' or '0.0.0.0') binds 127.0.0.1 instead,
// so the conformance suite's mock servers and server-everything never listen beyond loopback.
'use strict';
const net = require('net');
const listen2 = net.Server.prototype._listen2;
net.Server.prototype._listen2 = function (address, port, addressType, backlog, fd, flags) {
  const anyAddress = address === null || address === undefined || address === '::' || address === '0.0.0.0';
  if (anyAddress && (fd === undefined || fd === null || fd < 0)) {
    address = '127.0.0.1';
    addressType = 4;
  }
  return listen2.call(this, address, port, addressType, backlog, fd, flags);
};
