// Local backend: a world of one rank. AllReduce (sum or average over one rank)
// and Broadcast leave the data as it is, Barrier returns at once; arguments
// are still validated so a bad call fails here as it would with peers.
#pragma once

#include <memory>

#include "worker/comm/communicator.h"

namespace dtrain::comm {

std::unique_ptr<Communicator> MakeLocalCommunicator();

}  // namespace dtrain::comm
