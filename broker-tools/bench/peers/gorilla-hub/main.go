// gorilla-hub: a broadcast chat server written the way the seed tutorials write one with
// gorilla/websocket: a global map of clients, a broadcast channel, a hub goroutine that owns
// the map, and one writer goroutine per client with its own send channel. Every message a
// client sends ({"email","username","message"}) goes to every connected client, the sender
// included. One process, no rooms, no Redis.
//
// A peer for chatbroker's `make bench` (broker-tools/bench/run.py), not product. Unlike the
// tutorials, which call WriteJSON once per client, the hub encodes each message once and
// every writer sends the same bytes: the peer gets the cheaper of the two ways.
package main

import (
	"encoding/json"
	"flag"
	"log"
	"net/http"

	"github.com/gorilla/websocket"
)

// Message is the tutorials' chat message.
type Message struct {
	Email    string `json:"email"`
	Username string `json:"username"`
	Message  string `json:"message"`
}

type client struct {
	conn *websocket.Conn
	send chan []byte
}

var (
	clients    = make(map[*client]bool) // connected clients: the hub goroutine's alone
	broadcast  = make(chan []byte)      // encoded messages for everyone
	register   = make(chan *client)
	unregister = make(chan *client)
	upgrader   = websocket.Upgrader{
		ReadBufferSize:  1024,
		WriteBufferSize: 1024,
		CheckOrigin:     func(r *http.Request) bool { return true },
	}
)

// hub owns the clients map: it adds, removes and broadcasts. A client whose send channel is
// full does not keep up and is dropped.
func hub() {
	for {
		select {
		case c := <-register:
			clients[c] = true
		case c := <-unregister:
			if clients[c] {
				delete(clients, c)
				close(c.send)
			}
		case msg := <-broadcast:
			for c := range clients {
				select {
				case c.send <- msg:
				default:
					delete(clients, c)
					close(c.send)
				}
			}
		}
	}
}

// writer is the only goroutine that writes data frames to its client.
func writer(c *client) {
	for msg := range c.send {
		if err := c.conn.WriteMessage(websocket.TextMessage, msg); err != nil {
			break
		}
	}
	c.conn.Close()
}

func handleConnections(w http.ResponseWriter, r *http.Request) {
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		log.Println("upgrade:", err)
		return
	}
	c := &client{conn: ws, send: make(chan []byte, 256)}
	register <- c
	go writer(c)
	defer func() { unregister <- c }()
	for {
		var msg Message
		if err := ws.ReadJSON(&msg); err != nil {
			return
		}
		data, err := json.Marshal(msg)
		if err != nil {
			continue
		}
		broadcast <- data
	}
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to listen on")
	flag.Parse()
	http.HandleFunc("/ws", handleConnections)
	go hub()
	log.Printf("gorilla-hub listening on %s", *addr)
	log.Fatal(http.ListenAndServe(*addr, nil))
}
