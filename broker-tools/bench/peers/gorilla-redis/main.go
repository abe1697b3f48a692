// gorilla-redis: the seed tutorials' gorilla/websocket broadcast server (a hub goroutine, a
// broadcast channel, one writer goroutine per client) with Redis pub/sub between instances,
// as the tutorials scale it out: each message a client sends is PUBLISHed to one Redis
// channel; every instance SUBSCRIBEs to it and broadcasts what arrives to its own clients.
// Any number of instances form one chat room.
//
// A peer for chatbroker's `make bench` (broker-tools/bench/run.py), not product. As in
// gorilla-hub, each message is encoded once, not once per client.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"log"
	"net/http"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"
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
	clients    = make(map[*client]bool) // this instance's clients: the hub goroutine's alone
	broadcast  = make(chan []byte)      // messages from Redis for this instance's clients
	register   = make(chan *client)
	unregister = make(chan *client)
	upgrader   = websocket.Upgrader{
		ReadBufferSize:  1024,
		WriteBufferSize: 1024,
		CheckOrigin:     func(r *http.Request) bool { return true },
	}
	rdb     *redis.Client
	channel string
	ctx     = context.Background()
)

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

// subscriber hands every message of the Redis channel to the hub.
func subscriber() {
	pubsub := rdb.Subscribe(ctx, channel)
	if _, err := pubsub.Receive(ctx); err != nil {
		log.Fatal("subscribe: ", err)
	}
	for m := range pubsub.Channel() {
		broadcast <- []byte(m.Payload)
	}
}

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
		if err := rdb.Publish(ctx, channel, data).Err(); err != nil {
			log.Println("publish:", err)
		}
	}
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to listen on")
	redisAddr := flag.String("redis", "127.0.0.1:6379", "Redis host:port")
	flag.StringVar(&channel, "channel", "chat", "Redis channel shared by the instances")
	flag.Parse()
	rdb = redis.NewClient(&redis.Options{Addr: *redisAddr})
	if err := rdb.Ping(ctx).Err(); err != nil {
		log.Fatal("redis: ", err)
	}
	http.HandleFunc("/ws", handleConnections)
	go hub()
	go subscriber()
	log.Printf("gorilla-redis listening on %s, Redis %s channel %s", *addr, *redisAddr, channel)
	log.Fatal(http.ListenAndServe(*addr, nil))
}
