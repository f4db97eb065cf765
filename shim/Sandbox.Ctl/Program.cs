Console.WriteLine("sandboxctl");
