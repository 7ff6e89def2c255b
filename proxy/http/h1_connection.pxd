from proxy.http.exchange cimport Exchange
from proxy.http.h1_writer cimport H1Writer
from proxy.http.head cimport RequestHead
