from lsgan.run import main

main()
