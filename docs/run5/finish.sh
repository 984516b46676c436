#!/bin/bash
# After run 5's notebook: evaluate run 5 alone and two ensembles with it.
#   ensemble 6 = the shipped two networks (member 1, run 3) + run 5
#   ensemble 7 = the shipped two + run 4 (docs/run4/export) + run 5
# Ship rule, fixed before any result (issue 14 item 4): a candidate qualifies if PublicTest as served >= 69.73%
# (ensemble 4's 69.43% + 0.3) and its cost <= 3 ms per face (LiteRT, batch 1, this machine, nothing else running);
# if both qualify, the more accurate ships (equal: the one with fewer networks).
# The steps, once for runs 5 and 6: docs/finish_ensembles.sh (its evaluate now needs --labels fer2013, which it passes).
exec bash "$(dirname "$0")/../finish_ensembles.sh" 5 6 7
