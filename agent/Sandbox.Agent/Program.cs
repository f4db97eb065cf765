Console.WriteLine("sandbox-agent");
